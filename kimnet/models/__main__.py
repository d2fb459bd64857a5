"""``python -m kimnet.models [--size N] [names...]``: the model zoo as a table."""

from kimnet.models.zoo import main

raise SystemExit(main())
