"""The figures of the experiments: loss.png and prediction.png (sine), loss.png (charlm).

matplotlib is imported inside each function and drawn through its Agg
canvas directly (no pyplot, no global backend switch), so ``import npylstm``
never loads it and the plots work without a display.
"""
import numpy as np


def _figure(**kwargs):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(**kwargs)
    FigureCanvasAgg(fig)
    return fig


def plot_loss(path, losses, valid_loss=None):
    """Training loss per epoch on a log scale, with the final validation loss as a line.

    Inputs:
    - path: where to write the PNG
    - losses: (epochs,) training losses, one per epoch
    - valid_loss: float or None
    """
    fig = _figure(figsize=(7, 4.5), layout="constrained")
    ax = fig.add_subplot()
    epochs = np.arange(1, len(losses) + 1)
    ax.plot(epochs, losses, marker=".", label="training loss")
    if valid_loss is not None:
        ax.axhline(valid_loss, color="tab:orange", linestyle="--",
                   label=f"validation loss after training ({valid_loss:.2e})")
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("MSE loss")
    ax.set_title("Training loss")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="best")
    fig.savefig(path, dpi=100)


def plot_prediction(path, x, y, valid_x, valid_pred, forecast_x=None, forecast=None,
                    forecast_truth=None):
    """The series and the model's predictions.

    Top: the whole series, the validation targets shaded. Bottom: the end of
    the series up close, with the one-step predictions on the validation
    windows and, if given, the closed-loop forecast beside the true continuation.

    Inputs:
    - path: where to write the PNG
    - x, y: (n,) the time steps and values of the whole series
    - valid_x, valid_pred: (V,) the time steps of the validation targets and the
      one-step predictions for them
    - forecast_x, forecast, forecast_truth: (K,) or None, the time steps past the
      data, the closed-loop forecast and the true continuation there
    """
    title = "Sine wave: one-step predictions"
    fig = _figure(figsize=(11, 7), layout="constrained")
    top, bottom = fig.subplots(2, 1)

    top.plot(x, y, color="tab:blue", label="data")
    top.axvspan(valid_x[0] - 0.5, valid_x[-1] + 0.5, color="tab:orange", alpha=0.2,
                label="validation targets")
    top.set_title("Whole series")

    start = max(x[0], valid_x[0] - 40)
    shown = x >= start
    bottom.plot(x[shown], y[shown], color="tab:blue", label="data")
    bottom.axvspan(valid_x[0] - 0.5, valid_x[-1] + 0.5, color="tab:orange", alpha=0.2)
    bottom.plot(valid_x, valid_pred, color="tab:orange", marker="o", markersize=7,
                markerfacecolor="none", linestyle="none",
                label="one-step predictions\n(validation windows)")
    if forecast is not None and len(forecast):
        bottom.plot(forecast_x, forecast_truth, color="tab:blue", linestyle="--",
                    label="true continuation")
        bottom.plot(forecast_x, forecast, color="tab:red", marker=".",
                    label=f"closed-loop forecast ({len(forecast)} steps)")
        bottom.axvline(x[-1] + 0.5, color="grey", linestyle=":", label="end of the data")
        title = "Sine wave: one-step predictions and closed-loop forecast"
    bottom.set_title("End of the series" + (" and forecast" if forecast is not None else ""))

    for ax in (top, bottom):
        ax.set_xlabel("x (time step)")
        ax.set_ylabel("sin(2 pi x / period)")
        ax.grid(True, alpha=0.3)
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize="small")
    fig.suptitle(title)
    fig.savefig(path, dpi=100)


def plot_charlm_loss(path, train_steps, train_loss, valid_steps, valid_bpc, final_valid_bpc=None):
    """The character model's curves: training loss and validation bits per character by step.

    The training loss (nats per character) is drawn in bits (divided by ln 2),
    so both curves share one axis.

    Inputs:
    - path: where to write the PNG
    - train_steps, train_loss: (n,) the logged steps and their mean loss in nats per character
    - valid_steps, valid_bpc: (m,) the evaluation steps and bits per character on the
      fixed held-out slice
    - final_valid_bpc: float or None, bits per character on the whole held-out part
    """
    fig = _figure(figsize=(7, 4.5), layout="constrained")
    ax = fig.add_subplot()
    ax.plot(train_steps, np.asarray(train_loss, dtype=float) / np.log(2), label="training loss")
    if len(valid_steps):
        ax.plot(valid_steps, valid_bpc, marker="o", markersize=4,
                label="validation (fixed held-out slice)")
    if final_valid_bpc is not None:
        ax.axhline(final_valid_bpc, color="tab:green", linestyle="--",
                   label=f"final, whole held-out part ({final_valid_bpc:.3f})")
    ax.set_xlabel("step")
    ax.set_ylabel("bits per character")
    ax.set_title("Character model")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="best")
    fig.savefig(path, dpi=100)
