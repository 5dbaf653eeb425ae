import os
import sys

# Tests import the helpers module from this folder.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
