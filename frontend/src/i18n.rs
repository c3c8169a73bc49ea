//! Owns the cockpit's words in French and English: every label is a [`Text`], so a
//! missing translation is a compile error, not a blank on a wall screen.

use vigie_proto::words::label;
pub use vigie_proto::words::{channel_name, Lang};

/// A language's word for each [`Text`] (`lang.text(Text::Queues)`).
pub trait Say {
    fn text(self, text: Text) -> &'static str;
}

macro_rules! texts {
    ($($name:ident => $en:expr, $fr:expr;)*) => {
        /// A label of the cockpit.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum Text { $($name,)* }

        impl Text {
            pub const ALL: &'static [Text] = &[$(Text::$name,)*];
        }

        impl Say for Lang {
            fn text(self, text: Text) -> &'static str {
                match (self, text) {
                    $((Lang::En, Text::$name) => $en, (Lang::Fr, Text::$name) => $fr,)*
                }
            }
        }
    };
}

texts! {
    Live => "live", "en direct";
    Stale => "stale", "figé depuis";
    Quiet => "no event for", "aucun événement depuis";
    Rebuilding => "rebuilding", "reconstruction";
    Partial => "partial", "partiel";
    Waiting => "waiting for partitions", "en attente des partitions";
    Offline => "offline", "hors ligne";
    Connecting => "connecting", "connexion";
    WallView => "Wall", "Mur";
    SwitchboardView => "Switchboard", "Aiguillage";
    Total => label::TOTAL.en, label::TOTAL.fr;
    ServiceLevel => label::SERVICE_LEVEL.en, label::SERVICE_LEVEL.fr;
    AnswerRate => label::ANSWER_RATE.en, label::ANSWER_RATE.fr;
    Asa => label::ASA.en, label::ASA.fr;
    AbandonRate => label::ABANDON_RATE.en, label::ABANDON_RATE.fr;
    InQueue => label::IN_QUEUE.en, label::IN_QUEUE.fr;
    OldestWait => label::OLDEST_WAIT.en, label::OLDEST_WAIT.fr;
    OnceAndDone => label::ONCE_AND_DONE.en, label::ONCE_AND_DONE.fr;
    CrossChannel => label::CROSS_CHANNEL.en, label::CROSS_CHANNEL.fr;
    Arrivals => label::ARRIVALS.en, label::ARRIVALS.fr;
    LastHour => "last hour", "dernière heure";
    Minutes15 => "15 min", "15 min";
    Hour1 => "1 h", "1 h";
    Today => "Today", "Aujourd'hui";
    Site => "Site", "Site";
    Segment => "Segment", "Segment";
    Reason => "Contact reason", "Motif";
    AllValues => "all", "tous";
    Queue => "Queue", "File";
    Queues => "Queues", "Files d'attente";
    EstimatedWait => "Estimated wait", "Attente estimée";
    Alerts => "Alerts", "Alertes";
    NoAlerts => "No alert", "Aucune alerte";
    Acknowledge => "Acknowledge", "Prendre en charge";
    AcknowledgedBy => "acknowledged by", "pris en charge par";
    Formula => "Formula", "Formule";
    WindowLabel => "Window", "Fenêtre";
    TargetLabel => "target", "objectif";
    Threshold => label::THRESHOLD.en, label::THRESHOLD.fr;
    Pressure => "Pressure by contact reason", "Tension par motif";
    DeflectionRate => label::DEFLECTION_RATE.en, label::DEFLECTION_RATE.fr;
    Deflect => "Deflect…", "Délester…";
    NoContact => "No contact in this window.", "Aucun contact dans cette fenêtre.";
    Switches => "Deflection switches", "Aiguillages de débordement";
    Channel => "Channel", "Canal";
    DeflectTo => "Deflect to", "Vers";
    State => "State", "État";
    On => "ON", "ACTIF";
    Off => "off", "inactif";
    ChangedBy => "Changed by", "Modifié par";
    Why => "Why", "Motif du changement";
    Expires => "Expires", "Expire";
    Never => "never", "jamais";
    Effect => "Effect", "Effet";
    Deflected => "deflected", "déviés";
    CameBack => "came back", "revenus";
    Containment => "containment", "rétention";
    TurnOn => "Turn on", "Activer";
    TurnOff => "Turn off", "Désactiver";
    Confirm => "Confirm", "Confirmer";
    Cancel => "Cancel", "Annuler";
    WhyRequired => "Say why (required, shown to everyone)", "Motif (obligatoire, visible de tous)";
    ExpiresIn => "Turn off by itself after", "Désactivation automatique après";
    NewSwitch => "New switch", "Nouvel aiguillage";
    Create => "Create", "Créer";
    Any => "any", "tous";
    Audit => "Audit trail", "Journal des changements";
    When => "When", "Quand";
    Who => "Who", "Qui";
    Action => "Action", "Action";
    SwitchLabel => "Switch", "Aiguillage";
    NoSwitch => "No switch yet.", "Aucun aiguillage pour l'instant.";
    ReadOnly => "Read-only: your role cannot flip switches", "Lecture seule : votre rôle ne permet pas d'aiguiller";
    Token => "Access token", "Jeton d'accès";
    SignIn => "Sign in", "Se connecter";
    NeedToken => "This server requires an access token.", "Ce serveur demande un jeton d'accès.";
    Conflict => "Someone changed this switch meanwhile: the list is refreshed, decide again.", "Quelqu'un a modifié cet aiguillage entre-temps : la liste est à jour, décidez à nouveau.";
    NoData => "no data", "pas de données";
    ShowFormulas => "Formulas", "Formules";
    FormulaServiceLevel => "Answered within the channel's threshold ÷ (answered + abandoned), abandons shorter than the short-abandon threshold excluded; channels without a target left out.", "Répondus dans le seuil du canal ÷ (répondus + abandonnés), abandons courts exclus ; canaux sans objectif exclus.";
    FormulaAnswerRate => "Answered ÷ (answered + abandoned), short abandons excluded.", "Répondus ÷ (répondus + abandonnés), abandons courts exclus.";
    FormulaAsa => "Mean wait (answer time − arrival time) of the contacts answered in the window.", "Attente moyenne (réponse − arrivée) des contacts répondus dans la fenêtre.";
    FormulaAbandonRate => "Abandoned (after the short-abandon threshold) ÷ (answered + abandoned).", "Abandonnés (après le seuil d'abandon court) ÷ (répondus + abandonnés).";
    FormulaInQueue => "Contacts queued now and not yet answered or abandoned; oldest wait = age of the oldest. Live, not windowed.", "Contacts en file maintenant, ni répondus ni abandonnés ; plus longue attente = âge du plus ancien. En temps réel.";
    FormulaOnceAndDone => "Among contacts ended in the window with a known customer: resolved, and no earlier contact of that customer within the repeat horizon.", "Parmi les contacts terminés dans la fenêtre d'un client connu : résolus, sans contact antérieur de ce client dans l'horizon de réitération.";
    FormulaCrossChannel => "Among arrivals with a known customer: whose previous contact within the repeat horizon was on another channel.", "Parmi les arrivées d'un client connu : dont le contact précédent dans l'horizon de réitération était sur un autre canal.";
    Agents => "agents", "agents";
    AgentsTitle => "Agents", "Agents";
    Free => "free", "libres";
    OnContact => "on contact", "en contact";
    WrapUp => "wrap-up", "post-appel";
    Away => "away", "absents";
    LoggedOut => "logged out", "déconnectés";
    Occupancy => "Occupancy", "Occupation";
    VsLastWeek => "vs last week", "vs sem. dernière";
    ApplyProposal => "Apply", "Appliquer";
    AutopilotTitle => "Autopilot rules", "Règles de l'autopilote";
    AutopilotPropose => "proposes", "propose";
    AutopilotAct => "acts", "agit";
    AutopilotWhen => "when", "quand";
    AutopilotOff => "off when", "arrêt quand";
    AutopilotMinProjected => "if projected ≥", "si projeté ≥";
    AutopilotCooldown => "cooldown", "délai";
    Staffing => "Staffing by queue", "Effectifs par file";
    AgentList => "Agents", "Agents";
    Agent => "Agent", "Agent";
    TimeInState => "Time in state", "Depuis";
    Handled => "Handled", "Traités";
    Aht => "AHT", "DMT";
    NoAgent => "No agent in this scope.", "Aucun agent dans ce périmètre.";
    MoreAgents => "more agents not shown", "autres agents non affichés";
    FormulaStaffing => "Agents by state at the window's end: an agent's state is that of its latest event; staffed = logged in = free + on contact + wrap-up + away. An agent counts in each queue it serves, in the channels of those queues, once in the total.", "Agents par état à la fin de la fenêtre : l'état d'un agent est celui de son dernier événement ; présents = connectés = libres + en contact + post-appel + absents. Un agent compte dans chaque file qu'il sert, dans les canaux de ces files, une fois au total.";
    FormulaOccupancy => "Time on contact or in wrap-up ÷ time free, on contact or in wrap-up, over the window, summed over the agents of the scope (away time left out). Above about 85–90 %, agents burn out.", "Temps en contact ou en post-appel ÷ temps libre, en contact ou en post-appel, sur la fenêtre, cumulé sur les agents du périmètre (absences exclues). Au-delà de 85–90 % environ, les agents s'épuisent.";
    IfDeflected => "If deflected", "Si délesté";
    Predicted => "SL predicted", "NS prévu";
    Measured => "measured", "mesuré";
    OfLoad => "of the load", "de la charge";
    ProjectedSl => "Projected SL", "NS projeté";
    AgentsNeeded => "Agents needed", "Agents requis";
    FormulaProjection => "Erlang C on the window: offered load = (arrivals − deflected) ÷ window × AHT; agents = free + on contact + wrap-up now; projected SL = 1 − C(N, a)·e^(−(N − a)·T ÷ AHT), 0 when agents ≤ load. Multi-skilled agents count in each queue; nobody abandons in this model.", "Erlang C sur la fenêtre : charge offerte = (arrivées − délestés) ÷ fenêtre × DMT ; agents = libres + en contact + post-appel maintenant ; NS projeté = 1 − C(N, a)·e^(−(N − a)·T ÷ DMT), 0 si agents ≤ charge. Un agent multi-compétent compte dans chaque file ; le modèle ignore les abandons.";
    FormulaWhatIf => "The reason's share of the channel's offered load, and the channel's projected service level now → with that load removed (same agents, same AHT).", "La part du motif dans la charge offerte du canal, et le NS projeté du canal maintenant → sans cette charge (mêmes agents, même DMT).";
    FormulaEstimatedWait => "A range from the queue depth, the recent answer pace and the recent waits.", "Une fourchette, d'après la profondeur de file, le rythme de réponse récent et les attentes récentes.";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_text_exists_in_both_languages_and_differs_where_it_should() {
        for text in Text::ALL {
            assert!(!Lang::En.text(*text).is_empty(), "{text:?}");
            assert!(!Lang::Fr.text(*text).is_empty(), "{text:?}");
        }
        assert_ne!(
            Lang::En.text(Text::AnswerRate),
            Lang::Fr.text(Text::AnswerRate)
        );
    }
}
