"""`python -m ticgw.cli`: the `ticgw` command."""
import sys

from ticgw.cli import main

sys.exit(main())
