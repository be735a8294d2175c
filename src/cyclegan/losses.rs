//! Typed loss records. One step's losses (`Losses<Tensor>` while the step is recorded on the
//! device, `StepLosses` after its single readback), their running sums within an epoch, and an
//! epoch's record in the history. Every record is written and read by name: losses.csv's
//! columns, the checkpoint's history and the JSON a run leaves.

use serde::{Deserialize, Serialize};

/// The losses of one step in the paper's Table 2 terms; the serialized names are the paper's.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Losses<T> {
    #[serde(rename = "G_loss")]
    pub g: T,
    #[serde(rename = "G_AB_adversarial_loss")]
    pub g_ab_adv: T,
    #[serde(rename = "G_BA_adversarial_loss")]
    pub g_ba_adv: T,
    #[serde(rename = "ABA_reconstruction_loss")]
    pub aba_rec: T,
    #[serde(rename = "BAB_reconstruction_loss")]
    pub bab_rec: T,
    #[serde(rename = "DA_loss")]
    pub da: T,
    #[serde(rename = "DB_loss")]
    pub db: T,
    /// Paired objective: L1(G_AB(MRI), CT), unweighted, in normalized units (x 2012 for HU).
    #[serde(rename = "AB_L1_loss", default)]
    pub ab_l1: T,
}

/// A step's losses on the host.
pub type StepLosses = Losses<f32>;

impl<T> Losses<T> {
    /// The serialized names, in the order of `fields`: the paper's Table 2, then the paired
    /// objective's L1.
    pub const NAMES: [&'static str; 8] = [
        "G_loss",
        "G_AB_adversarial_loss",
        "G_BA_adversarial_loss",
        "ABA_reconstruction_loss",
        "BAB_reconstruction_loss",
        "DA_loss",
        "DB_loss",
        "AB_L1_loss",
    ];

    /// Every loss, in the order of `NAMES`.
    pub fn fields(&self) -> [&T; 8] {
        [
            &self.g,
            &self.g_ab_adv,
            &self.g_ba_adv,
            &self.aba_rec,
            &self.bab_rec,
            &self.da,
            &self.db,
            &self.ab_l1,
        ]
    }

    /// The inverse of `fields`.
    pub fn from_fields([g, g_ab_adv, g_ba_adv, aba_rec, bab_rec, da, db, ab_l1]: [T; 8]) -> Self {
        Losses {
            g,
            g_ab_adv,
            g_ba_adv,
            aba_rec,
            bab_rec,
            da,
            db,
            ab_l1,
        }
    }

    pub fn map<U>(&self, mut f: impl FnMut(&T) -> U) -> Losses<U> {
        Losses::from_fields(self.fields().map(&mut f))
    }
}

impl StepLosses {
    /// The paper's Table 2 losses, the first seven of `NAMES` (the order of the PyTorch
    /// reference's loss vectors).
    pub fn as_array(&self) -> [f32; 7] {
        let all = self.fields();
        std::array::from_fn(|i| *all[i])
    }

    /// The first loss that is NaN or infinite, by name.
    pub fn first_non_finite(&self) -> Option<(&'static str, f32)> {
        Self::NAMES
            .into_iter()
            .zip(self.fields())
            .map(|(name, v)| (name, *v))
            .find(|(_, v)| !v.is_finite())
    }

    /// DA + DB.
    pub fn d_loss(&self) -> f32 {
        self.da + self.db
    }

    /// ABA + BAB, the unweighted cycle L1 terms (normalized units: x 2012 for HU on the CT side).
    pub fn reconstruction_loss(&self) -> f32 {
        self.aba_rec + self.bab_rec
    }
}

/// Sums of the steps' losses within an epoch, in f64 so the mean does not depend on the
/// number of steps' rounding.
pub type LossSums = Losses<f64>;

impl LossSums {
    pub fn add(&mut self, step: &StepLosses) {
        let (sums, values) = (self.fields().map(|v| *v), step.fields().map(|v| *v));
        *self = Losses::from_fields(std::array::from_fn(|i| sums[i] + values[i] as f64));
    }

    pub fn mean(&self, steps: usize) -> StepLosses {
        self.map(|s| (*s / steps as f64) as f32)
    }
}

/// The record of one epoch: mean losses and timing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct EpochLosses {
    #[serde(flatten)]
    pub mean: StepLosses,
    pub seconds: f64,
    pub images_per_second: f64,
    /// Scores on the held-out pairs, in the epochs that were validated.
    #[serde(flatten, default, skip_serializing_if = "Option::is_none")]
    pub val: Option<super::validation::ValScores>,
}

type Column = (&'static str, fn(&EpochLosses) -> f32);

/// losses.csv's columns after `epoch` (the paper's Table 2, then the sums), by name.
pub const CSV_COLUMNS: [Column; 10] = [
    ("ABA_reconstruction_loss", |h| h.mean.aba_rec),
    ("BAB_reconstruction_loss", |h| h.mean.bab_rec),
    ("DA_loss", |h| h.mean.da),
    ("DB_loss", |h| h.mean.db),
    ("D_loss", |h| h.mean.d_loss()),
    ("G_AB_adversarial_loss", |h| h.mean.g_ab_adv),
    ("G_BA_adversarial_loss", |h| h.mean.g_ba_adv),
    ("G_loss", |h| h.mean.g),
    ("reconstruction_loss", |h| h.mean.reconstruction_loss()),
    ("AB_L1_loss", |h| h.mean.ab_l1),
];

/// losses.csv's validation columns after the timing ones, empty in epochs not validated.
pub const VAL_COLUMNS: [&str; 3] = ["val_MAE_HU", "val_PSNR_dB", "val_SSIM"];

impl EpochLosses {
    /// The values of `CSV_COLUMNS`, in its order.
    pub fn columns(&self) -> [f32; 10] {
        CSV_COLUMNS.map(|(_, value)| value(self))
    }

    /// Reads a history as a checkpoint stores it: a list of records by name, or the positional
    /// form older checkpoints used ([G, G_AB adv, G_BA adv, ABA, BAB, DA, DB, seconds, img/s]).
    pub fn parse_history(json: &str) -> Result<Vec<EpochLosses>, String> {
        if let Ok(named) = serde_json::from_str::<Vec<EpochLosses>>(json) {
            return Ok(named);
        }
        let rows: Vec<[f64; 9]> = serde_json::from_str(json)
            .map_err(|e| format!("neither named records nor the older 9-value rows: {e}"))?;
        Ok(rows
            .into_iter()
            .map(|h| EpochLosses {
                mean: Losses::from_fields(
                    [h[0], h[1], h[2], h[3], h[4], h[5], h[6], 0.0].map(|v| v as f32),
                ),
                seconds: h[7],
                images_per_second: h[8],
                val: None,
            })
            .collect())
    }
}

impl LossSums {
    /// Reads partial sums as a checkpoint stores them: by name, or the older 7-value list in
    /// `NAMES` order.
    pub fn parse(json: &str) -> Result<LossSums, String> {
        if let Ok(named) = serde_json::from_str::<LossSums>(json) {
            return Ok(named);
        }
        let [g, ab, ba, aba, bab, da, db]: [f64; 7] = serde_json::from_str(json)
            .map_err(|e| format!("neither named sums nor the older 7-value list: {e}"))?;
        Ok(Losses::from_fields([g, ab, ba, aba, bab, da, db, 0.0]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_by_name_and_old_positional_records_still_read() {
        let h = EpochLosses {
            mean: Losses::from_fields([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 0.0]),
            seconds: 8.0,
            images_per_second: 9.0,
            val: None,
        };
        let json = serde_json::to_string(&vec![h]).unwrap();
        assert!(
            json.contains("\"G_BA_adversarial_loss\":3.0")
                && json.contains("\"images_per_second\":9.0"),
            "{json}"
        );
        assert_eq!(EpochLosses::parse_history(&json).unwrap(), vec![h]);
        assert_eq!(
            EpochLosses::parse_history("[[1,2,3,4,5,6,7,8,9]]").unwrap(),
            vec![h]
        );
        assert!(EpochLosses::parse_history("[[1,2]]").is_err());
        assert_eq!(
            h.columns(),
            [4.0, 5.0, 6.0, 7.0, 13.0, 2.0, 3.0, 1.0, 9.0, 0.0]
        );
        let sums = LossSums::parse("[1,2,3,4,5,6,7]").unwrap();
        assert_eq!(sums.mean(2).as_array(), [0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5]);
        assert_eq!(
            LossSums::parse(&serde_json::to_string(&sums).unwrap()).unwrap(),
            sums
        );
    }
}
