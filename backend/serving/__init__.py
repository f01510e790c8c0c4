"""The serving version of a project: loading it (one owner), running it, and the prediction items
Label Studio receives."""
