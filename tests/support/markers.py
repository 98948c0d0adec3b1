"""What a prompt or model name must contain to make the test engine fail (no imports: the add-on
suite uses these under every Blender's Python, where the daemon package cannot be imported)."""

FAIL_MARKER = "[fail]"  # that job gets a typed error
CRASH_MARKER = "[crash]"  # the whole engine batch raises
MODEL = "test"
BROKEN_MODEL = "broken"
