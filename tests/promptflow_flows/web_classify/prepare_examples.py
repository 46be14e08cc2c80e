from promptflow import tool


@tool
def prepare_examples():
    return [
        {
            "url": "https://arxiv.org/abs/2307.04767",
            "text_content": "A paper about segment anything.",
            "category": "Academic",
            "evidence": "Text content",
        },
        {
            "url": "https://www.youtube.com/channel/UC_x5XG1OV2P6uZZ5FSM9Ttw",
            "text_content": "Google Developers channel.",
            "category": "Channel",
            "evidence": "Url",
        },
    ]
