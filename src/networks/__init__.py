"""One module per architecture; each exposes Net(inputsize, taskcla) with one output head per task."""
