"""The three phases over a dataset and a run store: the search loop (`search`), its evaluator
(`evaluator`) and proxy test (`proxy`), the validation check (`check`), the effectiveness test
(`effectiveness`), the phases applied to a recorded run (`runs`), where a run's data came from
(`rundata`), and their settings (`settings`).
No phase writes presentation files: `lossgen.reports` does."""
