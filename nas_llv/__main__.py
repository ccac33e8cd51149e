"""``python -m nas_llv``: the same as the ``nas-llv`` command."""
import sys

from nas_llv.cli import main

sys.exit(main())
