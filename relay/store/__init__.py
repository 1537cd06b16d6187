"""The story store, in rooms by concern. Import it through `relay.story_store`, its public entry point.

- `facade`: `StoryStore`, the edge: opens the database, checks arguments, runs each call in one
  transaction, turns database failures into StoryErrors, and hands the work to a room below.
- `timeline`: stories and their paragraphs (create, list, read, append) and the row helpers every
  write shares (fetch and lock a story, its head, the append with its checks).
- `history`: undo, redo, edit with every earlier version kept, versions, fork.
- `turns`: the model's turn (claim, draft, touch, release, discard, dead processes) and its candidates.
- `writers`: writer keys, names bound to keys, authorship checks; `moderation`: hide, block.
- `changes`: the change token, changed stories, waiting for a change (polling or LISTEN/NOTIFY).
- `exchange`: export as txt/md/json, and JSON import.
- `records`: the dataclasses and row converters; `errors`, `validation`: errors and input checks;
  `schema`: the database URL, the engine, the tables, `migrate()`; `migrations/`: Alembic.
"""
