"""billing: arrives with its issue; the app is registered so its place in the layout is fixed."""
