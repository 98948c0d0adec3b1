"""The HY-Motion inference daemon: a ZeroMQ service in front of one engine per device."""

__version__ = "0.1.0"
