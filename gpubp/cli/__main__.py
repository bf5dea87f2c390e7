"""``python -m gpubp.cli``: the ``gpubp`` command."""

import sys

from . import main

sys.exit(main())
