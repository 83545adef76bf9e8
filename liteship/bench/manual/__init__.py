"""The manual path users follow without liteship, as standalone scripts (one process per
step); ``manual_path.steps`` lists their commands, ``liteship bench`` times them."""
