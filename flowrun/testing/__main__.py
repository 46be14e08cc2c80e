"""``python -m flowrun.testing``: the loopback server as a command (see ``serve``)."""

from flowrun.testing.serve import main

if __name__ == "__main__":
    main()
