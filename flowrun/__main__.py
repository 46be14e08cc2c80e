"""``python -m flowrun``: the console script.

May import: ``cli``.
"""

from flowrun.cli import main

main()
