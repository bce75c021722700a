"""The paper's tasks: data, models around dense/TT/BT input maps, losses, metrics and previews."""
