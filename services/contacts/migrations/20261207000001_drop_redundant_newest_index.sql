-- Every read that walked `contacts_workspace_newest` (workspace, id descending) asks for
-- live Contacts only, which `contacts_live_id` (workspace, id, live rows) answers in
-- either direction; deleted Contacts are reached by id or through `contacts_deleted`.
-- The duplicate cost every insert a B-tree entry: about a twentieth of an import.
DROP INDEX contacts_workspace_newest;
