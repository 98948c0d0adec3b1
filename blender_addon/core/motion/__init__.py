"""The motion core: bpy-free numpy shared by the add-on's scene code, the batch and the tests.

- ``rotations``: quaternion math, (w, x, y, z).
- ``kinematics``: FK on the wire skeleton (the shared protocol's), world ⇄ local rotations.
- ``transfer``: skeleton-to-skeleton motion transfer in world space.
- ``skeletons``: the model's 22-joint skeleton, its legs, grounding margins.
- ``bvh_import``: BVH reading, and a humanoid BVH as a take on the model skeleton.
- ``contacts``: foot contacts and the foot-skate figure.
- ``ik``: analytic two-bone IK.
- ``root``: root-trajectory edits (in place, facing, root bone, travel per cycle).

Units are metres and axes the model's (Y up, facing +Z, left = +X) unless a function says
otherwise. Modules are imported one by one (no re-exports here) to keep import order simple.
"""
