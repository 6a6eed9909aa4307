import sys

from durr.cli import main

sys.exit(main())
