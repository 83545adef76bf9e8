"""``liteship apk``: check a built APK or App Bundle before it reaches Google Play.

Every .tflite is linted against the app contracts (``liteship.validation.lint``) and must be
stored uncompressed and 4-byte aligned (memory-mapped by the runtime); every native library
for the 64-bit ABIs must have its PT_LOAD segments aligned to >= 16 KB (and, when stored
uncompressed, its zip data 16 KB-aligned); the LiteRT / TFLite / MediaPipe / Task Library
runtimes found are reported with their known problems. See :mod:`liteship.apk.check`.
"""
