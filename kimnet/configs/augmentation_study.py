"""The augmentation study: one model, one budget, one row per augmentation setting.

VGG-11-BN at a quarter width trains on the first 1,000 Fashion-MNIST training images
for 12 epochs (:mod:`kimnet.configs.small_data`: a regime that overfits without
augmentation, so an augmentation has a gap to close), once per setting and seed::

    make study-augmentation            # 13 rows x 3 seeds
    make study-augmentation QUICK=1    # get_config("quick"): every row, 2 seeds, 2 steps
    python pipelines/study.py --study=configs/augmentation_study.py:long   # 2 rows, 36 epochs

Rows, in two groups, each compared with its group's first row:

- ``article``: none (the baseline); each of the source article's ops alone
  (``flip_h``, ``crop`` = pad 4 then random crop, ``rotate``, ``zoom``, ``translate``,
  ``noise``, at kimnet's default strengths); all of them together.
- ``modern``: ``flip_h,crop`` (the baseline of this group), then RandAugment, MixUp,
  CutMix and random erasing, each on top of ``flip_h,crop``.
"""

from kimnet.configs import small_data

ARTICLE_OPS = ("flip_h", "crop", "rotate", "zoom", "translate", "noise")
ON_TOP_OF = "flip_h,crop"
MODERN = {
    "randaugment": "randaugment=2:9",
    "mixup": "mixup=0.2",
    "cutmix": "cutmix=1.0",
    "erasing": "erasing=0.25",
}


def settings():
    """(row name, label, group, augment.ops) of every row, in the study's order."""
    yield "aug-none", "none", "article", "none"
    for op in ARTICLE_OPS:
        yield f"aug-{op}", op, "article", op
    yield "aug-article", "all of the article's ops", "article", ",".join(ARTICLE_OPS)
    yield "aug-flip-crop", ON_TOP_OF, "modern", ON_TOP_OF
    for name, op in MODERN.items():
        yield f"aug-{name}", f"{ON_TOP_OF} + {op}", "modern", f"{ON_TOP_OF},{op}"


# The ``long`` variant: the two rows that tell whether augmentation pays once training is
# long enough to fit the augmented images (at 12 epochs every augmented row still
# underfits them), at three times the budget's epochs.
LONG_ROWS = ("aug-none", "aug-flip-crop")
LONG_EPOCHS = 3 * small_data.BUDGET["schedule"]["epochs"]


def get_config(arg=None):
    rows = [
        {"name": name, "label": label, "group": group, "overrides": {"augment": {"ops": ops}}}
        for name, label, group, ops in settings()
        if arg != "long" or name in LONG_ROWS
    ]
    if arg != "long":
        return small_data.study("augmentation-study", "augmentation", rows, arg)
    for row in rows:
        row["group"] = "long"  # one group: flip_h,crop is compared with none
    config = small_data.study("augmentation-study-long", "augmentation", rows, None)
    config.base.schedule.epochs = LONG_EPOCHS
    return config
