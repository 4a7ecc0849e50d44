"""Upper bounds of the sizes that decide how much memory and time a model takes.

A size far beyond these is a typo or a crafted file (``image_size=100000`` asks for 120 GB
per image; ``tta=12345`` for a predict that never ends). The constructor's constraints and
:func:`imbal_estimators.load` both refuse larger values, naming the parameter.
"""

#: largest ``image_size`` (pixels per side; 4096 x 4096 x 3 floats are 200 MB per image)
MAX_IMAGE_SIZE = 4096
#: largest ``tta`` (views per image at predict time)
MAX_TTA = 64
#: largest ``batch_size`` (images per batch)
MAX_BATCH_SIZE = 65536
#: most elements (parameters and buffers) of a network that ``load`` builds from a
#: ``config.json`` without ``trusted=True``: 2**28 float32 values are 1 GiB
MAX_MODULE_ELEMENTS = 2**28
