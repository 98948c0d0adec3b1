"""The add-on's logic without Blender: no ``bpy``, ``mathutils`` or ``bl_*`` imports here.

Everything in this package runs under plain Python and is tested with plain pytest; the bpy
shell (``props``, ``operators``, ``ui``, ``build``, ``export``, ``history``) calls into it.
"""
