import sys

from gradreg.cli.main import main

sys.exit(main())
