//! `pss incidents`: import, add, list, rm.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::open;
use crate::cli::{history_time_arg, print, CmdResult, Failure};
use crate::domain::Incident;
use crate::store::incidents::{read_incidents, validate};
use crate::timefmt::format_time;

#[derive(Args, Debug)]
pub struct IncidentsArgs {
    #[command(subcommand)]
    pub action: IncidentAction,
}

#[derive(Subcommand, Debug)]
pub enum IncidentAction {
    /// Import incidents from CSV (id,service,start,end,severity,title) or a JSON array; all or nothing.
    Import {
        file: PathBuf,
        #[arg(long, value_name = "DB")]
        history: PathBuf,
    },
    /// Add one incident.
    Add {
        #[arg(long, value_name = "DB")]
        history: PathBuf,
        #[arg(long)]
        id: String,
        #[arg(long)]
        service: String,
        /// Start (RFC 3339 or epoch seconds).
        #[arg(long)]
        start: String,
        /// End (RFC 3339 or epoch seconds).
        #[arg(long)]
        end: String,
        #[arg(long, default_value = "")]
        severity: String,
        #[arg(long, default_value = "")]
        title: String,
    },
    /// List incidents.
    List {
        #[arg(long, value_name = "DB")]
        history: PathBuf,
        #[arg(long)]
        service: Option<String>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Remove an incident by id.
    Rm {
        id: String,
        #[arg(long, value_name = "DB")]
        history: PathBuf,
    },
}

/// Runs `pss incidents ...`.
pub fn incidents(a: IncidentsArgs) -> CmdResult {
    match a.action {
        IncidentAction::Import { file, history } => {
            let (new, places) = read_incidents(&file)?;
            let mut store = open(&history)?;
            let name = file.display().to_string();
            validate(&new, &store.incidents(None)?, &store.services()?, &|i| format!("{name}: {}", places[i]))?;
            store.add_incidents(&new)?;
            print(&format!("imported {} incidents from {name}\n", new.len()))
        }
        IncidentAction::Add { history, id, service, start, end, severity, title } => {
            let start = history_time_arg("start", &Some(start))?.unwrap_or_default();
            let end = history_time_arg("end", &Some(end))?.unwrap_or_default();
            let inc = Incident { id, service, start, end, severity, title };
            let mut store = open(&history)?;
            validate(std::slice::from_ref(&inc), &store.incidents(None)?, &store.services()?, &|_| "--id".into())?;
            store.add_incidents(std::slice::from_ref(&inc))?;
            print(&format!("added incident {}\n", inc.id))
        }
        IncidentAction::List { history, service, json } => {
            let store = open(&history)?;
            let list = store.incidents(service.as_deref())?;
            if json {
                return print(&(serde_json::to_string_pretty(&list).expect("serializable") + "\n"));
            }
            let mut out = format!(
                "{:<16} {:<14} {:<21} {:<21} {:>8}  {:<9} {}\n",
                "ID", "SERVICE", "START", "END", "MINUTES", "SEVERITY", "TITLE"
            );
            for i in &list {
                out += &format!(
                    "{:<16} {:<14} {:<21} {:<21} {:>8.1}  {:<9} {}\n",
                    i.id,
                    i.service,
                    format_time(i.start),
                    format_time(i.end),
                    (i.end - i.start) / 60.0,
                    i.severity,
                    i.title
                );
            }
            out += &format!("{} incidents\n", list.len());
            print(&out)
        }
        IncidentAction::Rm { id, history } => {
            let mut store = open(&history)?;
            if store.remove_incident(&id)? {
                print(&format!("removed incident {id}\n"))
            } else {
                Err(Failure::input(format!("no incident with id '{id}' in {}", history.display())))
            }
        }
    }
}
