"""Suite-wide settings: tests never reach the network (hub ids fail fast instead of downloading)."""

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
