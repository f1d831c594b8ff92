import sys

from bopt.cli import main

sys.exit(main())
