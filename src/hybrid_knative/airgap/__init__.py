"""Air-gap: image lists derived from rendered objects, bundle create / verify / import (DESIGN.md)."""
