"""``python -m inference.cli``: the headless commands without the viewer."""

import sys

from inference.cli.main import main

sys.exit(main())
