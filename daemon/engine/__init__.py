"""HY-Motion 1.0 inference engine: our own implementation of ``hymotion_spec.md``.

Modules in dependency order (none imports a later one): ``errors`` -> ``skeleton`` ->
``rotations`` -> ``math`` -> ``layers`` -> ``mmdit`` -> ``prompt`` -> ``text`` -> ``sampling``
-> ``grounding`` -> ``decode`` -> ``checkpoint`` -> ``memory`` -> ``pipeline`` -> ``tiny`` ->
``engine`` -> ``factory`` -> ``bench`` -> ``commands``. The service only needs
``factory.create_engine`` and ``commands.register``.
"""
