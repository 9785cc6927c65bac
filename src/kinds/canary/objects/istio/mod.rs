//! The Istio backend (`traffic: istio`): DestinationRule subsets per version, VirtualService
//! route patches weighted between them, and the Service selector patch while both versions
//! serve.

mod destination_rule;
mod routes;
mod service;

pub use routes::base_routes_name_subsets;

use super::Component;

/// The Istio components, in the order their files are listed in the overlay.
pub const COMPONENTS: &[&dyn Component] = &[
    &destination_rule::Subsets,
    &routes::Routes,
    &service::Selector,
];
