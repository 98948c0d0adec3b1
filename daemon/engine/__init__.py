"""HY-Motion 1.0 inference engine: our own implementation of ``hymotion_spec.md``.

Modules in dependency order (none imports a later one; tests/engine/test_engine_layout.py):
``errors`` -> ``skeleton`` -> ``math`` -> ``layers`` -> ``mmdit`` -> ``prompt`` -> ``text`` ->
``sampling`` -> ``solvers`` -> ``grounding`` -> ``features`` -> ``decode`` -> ``constraints`` ->
``checkpoint`` -> ``memory`` -> ``pipeline`` -> ``timeline`` -> ``tiny`` -> ``engine`` ->
``factory`` -> ``device_probe`` -> ``bench`` -> ``commands``. The service needs only
``factory.create_engine``, ``device_probe.probe_devices`` and ``commands.register``.
"""

ORDER = (
    "errors", "skeleton", "math", "layers", "mmdit", "prompt", "text", "sampling", "solvers",
    "grounding", "features", "decode", "constraints", "checkpoint", "memory", "pipeline",
    "timeline", "tiny", "engine", "factory", "device_probe", "bench", "commands",
)  # fmt: skip
