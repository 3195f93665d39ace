import sys

from ditto_compat.cli import main

sys.exit(main())
