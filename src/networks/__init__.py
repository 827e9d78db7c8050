"""One module per architecture; each exposes Net(inputsize, taskcla) with one output head per task, and VARIANT: None
for plain networks, or the kind of approach it is built for ('hat': task gates)."""
