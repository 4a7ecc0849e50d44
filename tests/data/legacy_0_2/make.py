"""Write tests/data/legacy_0_2: a model saved and pickled by imbal_estimators 0.2.

Run with a checkout of 0.2 (commit 033efb1) on PYTHONPATH; the argument is the output
folder. A small_cnn on the 12 images of legacy_0_1, positive class "common" (not the
rarer one) and threshold 0.6 on its probability, so a load that lost pos_index_ differs.
"""

import pathlib
import pickle
import sys

import numpy as np
from imblearn.over_sampling import RandomOverSampler

import imbal_estimators
from imbal_estimators import ImageImbalanceClassifier

print("imbal_estimators from", imbal_estimators.__file__)  # a checkout of 0.2 on PYTHONPATH
out = pathlib.Path(sys.argv[1])
legacy = pathlib.Path(__file__).parent.parent / "legacy_0_1" / "imgs"
paths = [str(legacy / f"{i}.png") for i in range(12)]
labels = ["common"] * 8 + ["rare"] * 4
clf = ImageImbalanceClassifier(
    backbone="small_cnn",
    weights=None,
    image_size=16,
    loss="focal",
    alpha="balanced",
    sampler=RandomOverSampler(random_state=0),
    threshold=0.6,
    lr=0.01,
    max_epochs=2,
    batch_size=4,
    train_split=0.34,
    random_state=0,
    verbose=0,
    precision="fp32",
    device="cpu",
    cache=None,
    pos_label="common",
)
clf.fit(paths, labels)
out.mkdir(parents=True, exist_ok=True)
clf.save(out / "saved")
with open(out / "model.pkl", "wb") as f:
    pickle.dump(clf, f)
np.save(out / "proba.npy", clf.predict_proba(paths))
np.save(out / "predict.npy", clf.predict(paths).astype(str))
print(clf.threshold_, clf.temperature_, clf.pos_label_, clf.pos_index_, clf.predict(paths))
