//! Checks of the scalar operators built into ExecuTorch's core library ("prim ops":
//! `aten::sym_size.int`, `executorch_prim::floordiv.Scalar`, ...).
//!
//! These kernels trust their operands more than the operator libraries do:
//! `sym_size.int` asserts (abort) when its dim is outside the tensor's rank, integer
//! `floordiv`/`mod` divide by whatever the divisor holds (SIGFPE at 0, and at −1 for the
//! smallest integer), and the arithmetic ones overwrite their `out` value with whatever type
//! their operands produce, so an `out` declared Int that receives a Double makes the next
//! kernel's `toInt()` abort. A fuzzed program reached the first of these
//! (`fuzz/crashes/pte_load/ptecrash-crash-ac658a51...`).
//!
//! So, before ExecuTorch sees a method, every prim-op call must be well typed: operand types
//! the kernel handles, an `out` of exactly the type it writes (so the declared types hold at
//! run time), and the values it trusts (a dim, a divisor) fixed in the program and in range.
//! A value is *fixed* when nothing writes it at run time: it is not a method input, not the
//! `out` (last) argument of any kernel call, not an argument of any delegate call and not a
//! move destination. Exported models only ever use fixed dims and divisors; a program that
//! computes one at run time is refused, as its safety cannot be shown before it runs.
//!
//! The typing of `sym_int`, `sym_not` and `sym_ite`, whose 1.5.1 sources were not available
//! here, follows their names (Int, Bool, and the branches' type).

/// What the integrity pass knows about one value of a method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fact {
    /// An Int; `fixed` holds its value when nothing writes it at run time.
    Int {
        /// The value, if fixed.
        fixed: Option<i64>,
    },
    /// A Double.
    Double,
    /// A Bool.
    Bool,
    /// A tensor of `rank` dimensions and ExecuTorch scalar type `dtype`.
    Tensor {
        /// Number of dimensions.
        rank: usize,
        /// `ScalarType` code.
        dtype: i8,
    },
    /// Anything else (lists, strings, None).
    Other,
}

/// The scalar kinds prim ops compute with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scalar {
    Int,
    Double,
    Bool,
}

impl Scalar {
    fn of(fact: Fact) -> Option<Scalar> {
        match fact {
            Fact::Int { .. } => Some(Scalar::Int),
            Fact::Double => Some(Scalar::Double),
            Fact::Bool => Some(Scalar::Bool),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Scalar::Int => "an Int",
            Scalar::Double => "a Double",
            Scalar::Bool => "a Bool",
        }
    }
}

fn describe(fact: Fact) -> &'static str {
    match fact {
        Fact::Tensor { .. } => "a Tensor",
        Fact::Other => "a list, string or None",
        scalar => Scalar::of(scalar).map_or("a value", Scalar::name),
    }
}

/// Checks one kernel call; `Ok` for operators that are not prim ops. The error says what is
/// wrong, for [`PteError::CorruptProgram`](crate::pte::PteError::CorruptProgram).
pub(crate) fn check(op: &str, args: &[usize], facts: &[Fact]) -> Result<(), String> {
    let Some(rule) = rule(op) else {
        return Ok(());
    };
    if args.len() != rule.arity() {
        return Err(format!(
            "{op} passes {} arguments, the operator takes {}",
            args.len(),
            rule.arity()
        ));
    }
    let fact = |a: usize| {
        args.get(a)
            .and_then(|&v| facts.get(v))
            .copied()
            .unwrap_or(Fact::Other)
    };
    let operand = |a: usize, allowed: &[Scalar]| -> Result<Scalar, String> {
        match Scalar::of(fact(a)) {
            Some(s) if allowed.contains(&s) => Ok(s),
            _ => Err(format!(
                "{op} argument {a} is {}, which the kernel does not take",
                describe(fact(a))
            )),
        }
    };
    let out = |a: usize, want: Scalar| -> Result<(), String> {
        if Scalar::of(fact(a)) == Some(want) {
            Ok(())
        } else {
            Err(format!(
                "{op} writes {} into argument {a}, which is declared as {} (later kernels \
                 would read it as the wrong type)",
                want.name(),
                describe(fact(a))
            ))
        }
    };
    use Scalar::{Bool, Double, Int};
    const NUMBER: &[Scalar] = &[Int, Double];
    match rule {
        Rule::SymSize => {
            let Fact::Tensor { rank, .. } = fact(0) else {
                return Err(format!(
                    "{op} argument 0 is {}, not a Tensor",
                    describe(fact(0))
                ));
            };
            match fact(1) {
                Fact::Int { fixed: Some(d) } if (0..rank as i64).contains(&d) => {}
                Fact::Int { fixed: Some(d) } => {
                    return Err(format!(
                        "{op} asks for dimension {d} of a rank-{rank} tensor (the runtime \
                         aborts on it)"
                    ))
                }
                Fact::Int { fixed: None } => {
                    return Err(format!(
                        "{op} takes a dimension computed at run time; only a dimension fixed \
                         in the program can be checked against the tensor's rank"
                    ))
                }
                other => return Err(format!("{op} dimension is {}", describe(other))),
            }
            out(2, Int)
        }
        Rule::LocalScalarDense => {
            let Fact::Tensor { dtype, .. } = fact(0) else {
                return Err(format!(
                    "{op} argument 0 is {}, not a Tensor",
                    describe(fact(0))
                ));
            };
            let want = match dtype {
                0..=4 => Int,
                5..=7 | 15 => Double,
                11 => Bool,
                other => {
                    return Err(format!(
                        "{op} reads a tensor of scalar type {other}, which it cannot convert"
                    ))
                }
            };
            out(1, want)
        }
        Rule::Arithmetic { divides } => {
            let (a, b) = (operand(0, NUMBER)?, operand(1, NUMBER)?);
            if divides && (a, b) == (Int, Int) {
                divisor(op, fact(1))?;
            }
            out(2, if (a, b) == (Int, Int) { Int } else { Double })
        }
        Rule::TrueDiv => {
            operand(0, NUMBER)?;
            operand(1, NUMBER)?;
            out(2, Double)
        }
        Rule::Compare => {
            let (a, b) = (
                operand(0, &[Int, Double, Bool])?,
                operand(1, &[Int, Double, Bool])?,
            );
            if (a == Bool) != (b == Bool) {
                return Err(format!("{op} compares {} with {}", a.name(), b.name()));
            }
            out(2, Bool)
        }
        Rule::IntOnly { divides } => {
            operand(0, &[Int])?;
            operand(1, &[Int])?;
            if divides {
                divisor(op, fact(1))?;
            }
            out(2, Int)
        }
        Rule::Unary { from, to } => {
            let a = operand(0, from)?;
            out(1, to.unwrap_or(a))
        }
        Rule::IfThenElse => {
            operand(0, &[Bool])?;
            let then = operand(1, &[Int, Double, Bool])?;
            operand(2, &[then])?;
            out(3, then)
        }
    }
}

/// An integer divisor must be fixed and neither 0 (division by zero) nor −1 (the smallest
/// integer divided by −1 overflows): both raise SIGFPE.
fn divisor(op: &str, fact: Fact) -> Result<(), String> {
    match fact {
        Fact::Int { fixed: Some(d) } if d != 0 && d != -1 => Ok(()),
        Fact::Int { fixed: Some(d) } => Err(format!(
            "{op} divides by the integer {d} (the process would get SIGFPE)"
        )),
        _ => Err(format!(
            "{op} divides by an integer computed at run time; only a divisor fixed in the \
             program can be checked against zero"
        )),
    }
}

#[derive(Debug, Clone, Copy)]
enum Rule {
    SymSize,
    LocalScalarDense,
    /// add, sub, mul, floordiv.Scalar: Int op Int is an Int, anything with a Double a Double.
    Arithmetic {
        divides: bool,
    },
    TrueDiv,
    Compare,
    /// sym_max, sym_min, floordiv.int, mod.int, mod.Scalar.
    IntOnly {
        divides: bool,
    },
    /// One operand of a kind in `from`; the result is `to`, or the operand's kind.
    Unary {
        from: &'static [Scalar],
        to: Option<Scalar>,
    },
    IfThenElse,
}

impl Rule {
    fn arity(self) -> usize {
        match self {
            Rule::LocalScalarDense | Rule::Unary { .. } => 2,
            Rule::IfThenElse => 4,
            _ => 3,
        }
    }
}

fn rule(op: &str) -> Option<Rule> {
    use Scalar::{Bool, Double, Int};
    let r = match op {
        "aten::sym_size.int" => Rule::SymSize,
        "aten::_local_scalar_dense" => Rule::LocalScalarDense,
        "executorch_prim::add.Scalar"
        | "executorch_prim::sub.Scalar"
        | "executorch_prim::mul.Scalar" => Rule::Arithmetic { divides: false },
        "executorch_prim::floordiv.Scalar" => Rule::Arithmetic { divides: true },
        "executorch_prim::truediv.Scalar" => Rule::TrueDiv,
        "executorch_prim::eq.Scalar"
        | "executorch_prim::gt.Scalar"
        | "executorch_prim::lt.Scalar"
        | "executorch_prim::ge.Scalar"
        | "executorch_prim::le.Scalar" => Rule::Compare,
        "executorch_prim::sym_max.Scalar" | "executorch_prim::sym_min.Scalar" => {
            Rule::IntOnly { divides: false }
        }
        "executorch_prim::floordiv.int"
        | "executorch_prim::mod.int"
        | "executorch_prim::mod.Scalar" => Rule::IntOnly { divides: true },
        "executorch_prim::neg.Scalar" => Rule::Unary {
            from: &[Int, Double],
            to: None,
        },
        "executorch_prim::sym_float.Scalar" => Rule::Unary {
            from: &[Int, Double],
            to: Some(Double),
        },
        "executorch_prim::ceil.Scalar"
        | "executorch_prim::round.Scalar"
        | "executorch_prim::trunc.Scalar" => Rule::Unary {
            from: &[Double],
            to: Some(Int),
        },
        "executorch_prim::sym_int.Scalar" => Rule::Unary {
            from: &[Int, Double],
            to: Some(Int),
        },
        "executorch_prim::sym_not.Scalar" => Rule::Unary {
            from: &[Bool],
            to: Some(Bool),
        },
        "executorch_prim::sym_ite.Scalar" => Rule::IfThenElse,
        _ => return None,
    };
    Some(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    const T2: Fact = Fact::Tensor { rank: 2, dtype: 6 };
    fn int(v: i64) -> Fact {
        Fact::Int { fixed: Some(v) }
    }
    const RUNTIME_INT: Fact = Fact::Int { fixed: None };

    #[test]
    fn sym_size_needs_a_fixed_dim_inside_the_rank() {
        let op = "aten::sym_size.int";
        assert_eq!(check(op, &[0, 1, 2], &[T2, int(1), RUNTIME_INT]), Ok(()));
        for bad in [int(2), int(-1), int(33_554_433), RUNTIME_INT, Fact::Double] {
            assert!(
                check(op, &[0, 1, 2], &[T2, bad, RUNTIME_INT]).is_err(),
                "{bad:?}"
            );
        }
        assert!(check(op, &[0, 1, 2], &[T2, int(0), Fact::Double]).is_err());
        assert!(check(op, &[0, 1], &[T2, int(0)]).is_err());
    }

    #[test]
    fn integer_division_needs_a_fixed_nonzero_divisor() {
        for op in [
            "executorch_prim::floordiv.int",
            "executorch_prim::mod.Scalar",
        ] {
            let facts = |b| [RUNTIME_INT, b, RUNTIME_INT];
            assert_eq!(check(op, &[0, 1, 2], &facts(int(2))), Ok(()));
            for bad in [int(0), int(-1), RUNTIME_INT] {
                let e = check(op, &[0, 1, 2], &facts(bad)).unwrap_err();
                assert!(e.contains("divide"), "{e}");
            }
        }
        // A Double divisor is handled by the kernel (it returns ±inf).
        let op = "executorch_prim::floordiv.Scalar";
        let facts = [RUNTIME_INT, Fact::Double, Fact::Double];
        assert_eq!(check(op, &[0, 1, 2], &facts), Ok(()));
    }

    #[test]
    fn out_must_have_the_type_the_kernel_writes() {
        let add = "executorch_prim::add.Scalar";
        assert_eq!(
            check(add, &[0, 1, 2], &[int(1), int(2), RUNTIME_INT]),
            Ok(())
        );
        let e = check(add, &[0, 1, 2], &[int(1), Fact::Double, RUNTIME_INT]).unwrap_err();
        assert!(e.contains("writes a Double"), "{e}");
        let div = "executorch_prim::truediv.Scalar";
        assert!(check(div, &[0, 1, 2], &[int(1), int(2), RUNTIME_INT]).is_err());
        assert_eq!(
            check(div, &[0, 1, 2], &[int(1), int(2), Fact::Double]),
            Ok(())
        );
        let lt = "executorch_prim::lt.Scalar";
        assert_eq!(
            check(lt, &[0, 1, 2], &[int(1), Fact::Double, Fact::Bool]),
            Ok(())
        );
        assert!(check(lt, &[0, 1, 2], &[int(1), Fact::Bool, Fact::Bool]).is_err());
        let ite = "executorch_prim::sym_ite.Scalar";
        let facts = [Fact::Bool, int(1), int(2), RUNTIME_INT];
        assert_eq!(check(ite, &[0, 1, 2, 3], &facts), Ok(()));
        let facts = [Fact::Bool, int(1), Fact::Double, RUNTIME_INT];
        assert!(check(ite, &[0, 1, 2, 3], &facts).is_err());
    }

    #[test]
    fn local_scalar_dense_out_follows_the_dtype() {
        let op = "aten::_local_scalar_dense";
        let long = Fact::Tensor { rank: 1, dtype: 4 };
        assert_eq!(check(op, &[0, 1], &[long, RUNTIME_INT]), Ok(()));
        assert!(check(op, &[0, 1], &[long, Fact::Double]).is_err());
        assert_eq!(check(op, &[0, 1], &[T2, Fact::Double]), Ok(()));
    }

    #[test]
    fn other_operators_are_not_checked_here() {
        assert_eq!(check("aten::add.out", &[0], &[Fact::Other]), Ok(()));
        assert_eq!(check("executorch_prim::et_view.default", &[], &[]), Ok(()));
    }
}
