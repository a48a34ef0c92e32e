"""``python -m p2p_deploy`` is ``p2p``."""

import sys

from p2p_deploy.cli import main

sys.exit(main())
