"""python -m envoy_fast"""
import sys

from envoy_fast.cli import main

sys.exit(main())
