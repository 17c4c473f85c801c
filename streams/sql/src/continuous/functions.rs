//! The window functions as DataFusion scalar UDFs. `TUMBLE(ts, size)` works anywhere: it is the
//! start of the tumbling window holding `ts` (so an ad-hoc `GROUP BY TUMBLE(...)` buckets a
//! topic's history). `HOP` and `SESSION` put a row in several or data-dependent windows, which
//! only a continuous query (`CREATE STREAM`) can do: outside one they fail with that message.

use std::sync::Arc;

use datafusion::arrow::array::{Array, Int64Array, TimestampMillisecondArray};
use datafusion::arrow::compute;
use datafusion::arrow::datatypes::{DataType, TimeUnit};
use datafusion::common::{ScalarValue, exec_err, plan_err};
use datafusion::error::Result as DfResult;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::prelude::SessionContext;

/// Registers `tumble`, `hop` and `session`.
pub(crate) fn register(session: &SessionContext) {
    session.register_udf(ScalarUDF::new_from_impl(Window::new("tumble", 2)));
    session.register_udf(ScalarUDF::new_from_impl(Window::new("hop", 3)));
    session.register_udf(ScalarUDF::new_from_impl(Window::new("session", 2)));
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct Window {
    name: &'static str,
    signature: Signature,
}

impl Window {
    fn new(name: &'static str, args: usize) -> Self {
        Window {
            name,
            signature: Signature::any(args, Volatility::Immutable),
        }
    }
}

fn interval_ms(v: &ColumnarValue) -> DfResult<i64> {
    let ColumnarValue::Scalar(s) = v else {
        return exec_err!("the window size must be a constant");
    };
    match s {
        ScalarValue::IntervalMonthDayNano(Some(i)) if i.months == 0 => {
            Ok(i64::from(i.days) * 86_400_000 + i.nanoseconds / 1_000_000)
        }
        ScalarValue::IntervalDayTime(Some(i)) => {
            Ok(i64::from(i.days) * 86_400_000 + i64::from(i.milliseconds))
        }
        ScalarValue::Int64(Some(ms)) => Ok(*ms),
        other => exec_err!("the window size must be an INTERVAL without months, got {other}"),
    }
}

impl ScalarUDFImpl for Window {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> DfResult<DataType> {
        if self.name != "tumble" {
            return plan_err!(
                "{}(...) windows need a continuous query: CREATE STREAM name AS SELECT ... GROUP BY {}(...)",
                self.name.to_uppercase(),
                self.name.to_uppercase()
            );
        }
        Ok(DataType::Timestamp(
            TimeUnit::Millisecond,
            Some("UTC".into()),
        ))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let [ts, size] = args.args.as_slice() else {
            return exec_err!("TUMBLE(ts, size) takes two arguments");
        };
        let size = interval_ms(size)?;
        if size <= 0 {
            return exec_err!("the window size must be positive");
        }
        let array = ts.to_array(args.number_rows)?;
        let ms = match array.data_type() {
            DataType::Timestamp(_, _) => {
                compute::cast(&array, &DataType::Timestamp(TimeUnit::Millisecond, None))
                    .and_then(|c| compute::cast(&c, &DataType::Int64))?
            }
            _ => compute::cast(&array, &DataType::Int64)?,
        };
        let Some(ms) = ms.as_any().downcast_ref::<Int64Array>() else {
            return exec_err!("TUMBLE: the time argument must be a timestamp or milliseconds");
        };
        let starts: TimestampMillisecondArray = ms
            .iter()
            .map(|v| v.map(|t| t.div_euclid(size) * size))
            .collect::<TimestampMillisecondArray>()
            .with_timezone("UTC");
        Ok(ColumnarValue::Array(Arc::new(starts)))
    }
}
