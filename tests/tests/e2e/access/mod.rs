//! Access: the wall between workspaces for every RPC, roles against the administrative
//! RPCs, tokens, users and teams, rate limits, and organizations.
mod isolation;
mod organizations;
mod rate_limits;
mod roles;
mod tokens;
mod users_and_teams;
