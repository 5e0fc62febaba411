"""Unit tests run without a broker; the app's local state goes to a throw-away folder."""

import os
import tempfile

os.environ.setdefault("STREAMREC_DATA_DIR", tempfile.mkdtemp(prefix="streamrec-unit-"))
