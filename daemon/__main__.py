import sys

from daemon.cli import main

status = main()
if "ray" in sys.modules:  # a Ray driver: Ray's native threads outlive a normal exit
    from daemon.cluster.session import end_process

    end_process(status)
sys.exit(status)
