// Placeholder: the toggle model lands with issue 4.
