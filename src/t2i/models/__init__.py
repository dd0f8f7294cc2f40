"""One file per model, each readable in one sitting."""
