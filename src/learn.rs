//! The shape every learner in pss takes (a leaf: no pss imports).

/// linfa's shape, for every detector and the tuner: hyperparameters are
/// checked into a `Checked…` value (`Params { .. }.check()?`), which fits a
/// model to data (`.fit(&data)?`); the model then scores. linfa's own `Fit`
/// trait is not used because it takes linfa's `DatasetBase` and a
/// `From<linfa::Error>` error type; these detectors take plain `ndarray`
/// matrices (and labels, for the supervised one).
pub trait Fit<Data: ?Sized> {
    type Model;
    type Error: std::error::Error;
    /// Fits a model to `data`.
    fn fit(&self, data: &Data) -> Result<Self::Model, Self::Error>;
}
