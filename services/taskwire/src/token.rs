//! `taskwire token`: creates an API token. The token is printed once; the configuration keeps
//! only its SHA-256.

use crate::error::CliError;

#[derive(Debug, clap::Args)]
pub struct TokenArgs {
    /// The user the token authenticates (recorded in the audit log).
    #[arg(long)]
    user: String,
    /// Roles of the user, comma separated (defined under [gateway.roles]).
    #[arg(long, value_delimiter = ',')]
    roles: Vec<String>,
}

pub fn run(args: TokenArgs) -> Result<(), CliError> {
    let user = args.user.trim();
    if user.is_empty() || user.chars().any(|c| c.is_control() || c == '"') {
        return Err(CliError::Usage(
            "--user must be a non-empty name without quotes or control characters".into(),
        ));
    }
    let token = taskwire_gateway::auth::generate_token().map_err(CliError::Usage)?;
    let roles = args
        .roles
        .iter()
        .map(|r| format!("\"{}\"", r.trim()))
        .collect::<Vec<_>>()
        .join(", ");
    println!("token for {user} (shown once; give it to the user, keep it secret):");
    println!("  {token}");
    println!();
    println!("add to the gateway configuration:");
    println!();
    println!("[[gateway.tokens]]");
    println!("user = \"{user}\"");
    println!("roles = [{roles}]");
    println!("sha256 = \"{}\"", taskwire_gateway::auth::hash_hex(&token));
    Ok(())
}
