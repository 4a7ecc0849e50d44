"""The data path up to the network: paths, decoding, caches, pre-flight scan, folders.

* :mod:`.images` -- checked paths, decoding and resizing, datasets, augmentation, ImageFolder
* :mod:`.labels` -- the labels ``y``
* :mod:`.cache` -- decoded images and features reused across epochs, folds and processes
* :mod:`.preflight` -- every image decoded once before training, bad files listed together
* :mod:`.tta` -- seeded augmented views for test-time augmentation
* :mod:`.demo` -- the embedded demo folder (scikit-learn's digits as PNG files)
"""

# 0.1 had a module ``imbal_estimators.data``; its names stay importable from here.
from .images import (  # noqa: F401
    ImageFileError,
    ImageLoader,
    ImagePathDataset,
    check_files_exist,
    check_paths,
    load_image_folder,
    make_augmentation,
    scan_images,
)
