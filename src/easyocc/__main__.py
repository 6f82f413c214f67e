import sys

from easyocc.cli import main

sys.exit(main())
