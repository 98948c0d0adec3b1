"""Where the add-on's panels live: View3D > Sidebar > HY-Motion."""

from __future__ import annotations

import bpy


class SidebarPanel(bpy.types.Panel):
    """Base of every HY-Motion panel (never registered itself): the tab they share."""

    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "HY-Motion"
