"""The Relay web page: `relay.ui.demo.build_demo(engine, store)` returns the gr.Blocks (story list, story, lab, API)."""
