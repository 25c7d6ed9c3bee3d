"""Print N orders as `customer:{"order": n, "amount": cents}` lines, for `rxstargate produce -K :`.

python orders.py 1000 | rxstargate produce orders -K : -q
"""

from __future__ import annotations

import json
import random
import sys

CUSTOMERS = ["alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi"]


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 100
    for order in range(1, count + 1):
        amount = random.randint(100, 10_000)
        print(f"{random.choice(CUSTOMERS)}:{json.dumps({'order': order, 'amount': amount})}")
    print("mallory:this is not an order")  # one for the dead-letter topic


if __name__ == "__main__":
    main()
