"""``python -m stream_app ...`` is the same as ``streamrec ...``."""

import sys

from stream_app.cli.main import main

sys.exit(main())
