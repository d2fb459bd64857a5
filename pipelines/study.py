"""Runs a study: a list of experiments (a base config plus overrides per row), one table.

    python pipelines/study.py --study=configs/architecture_study.py
    python pipelines/study.py --study=configs/transfer_study.py:quick
    python pipelines/study.py --study=configs/architecture_study.py --only=arch-resnet18

The same program is `kimnet study`.
"""

import sys

from kimnet.commands import study

if __name__ == "__main__":
    sys.exit(study.main())
