"""The regularisation study: dropout, batch norm, weight decay and label smoothing.

The augmentation study's budget (:mod:`kimnet.configs.small_data`): VGG-11-BN at a
quarter width on the first 1,000 Fashion-MNIST training images for 12 epochs, which
overfits without regularisation, with no augmentation, so the gap between train and
test top-1 is the regulariser's alone. The baseline row has none of them; every other
row changes one setting and is compared with the baseline::

    make study-regularization            # 8 rows x 3 seeds
    make study-regularization QUICK=1    # get_config("quick"): every row, 2 seeds, 2 steps

- dropout before the classifier 0.2 and 0.5 (VGG: after ``fc1`` and ``fc2``);
- without batch norm: ``vgg11``, the same network without its batch-norm layers, at
  the budget's learning rate (0.05: in a probe two of three seeds diverged, which is
  part of what batch norm does) and at 0.01, a rate plain VGG trains at (the VGG
  paper's);
- weight decay 5e-4 and 5e-3 (SGD's: each step shrinks a weight by rate x decay);
- label smoothing 0.1.
"""

from kimnet.configs import small_data

ROWS = (
    ("reg-baseline", "baseline (no regularisation)", {}),
    ("reg-dropout-0.2", "dropout 0.2", {"model": {"dropout": 0.2}}),
    ("reg-dropout-0.5", "dropout 0.5", {"model": {"dropout": 0.5}}),
    ("reg-no-batchnorm", "without batch norm (vgg11)", {"model": {"name": "vgg11"}}),
    (
        "reg-no-batchnorm-lr0.01",
        "without batch norm (vgg11), lr 0.01",
        {"model": {"name": "vgg11"}, "optim": {"learning_rate": 0.01}},
    ),
    ("reg-wd-5e-4", "weight decay 5e-4", {"optim": {"weight_decay": 5e-4}}),
    ("reg-wd-5e-3", "weight decay 5e-3", {"optim": {"weight_decay": 5e-3}}),
    ("reg-smoothing-0.1", "label smoothing 0.1", {"optim": {"label_smoothing": 0.1}}),
)


def get_config(arg=None):
    rows = [
        {"name": name, "label": label, "overrides": overrides} for name, label, overrides in ROWS
    ]
    return small_data.study("regularization-study", "regularization", rows, arg)
